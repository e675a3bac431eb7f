# Builds a Debian 12 VM with Packer's qemu builder (booted, provisioned over
# SSH), then hands its disk to imgbake in a shell-local post-processor, which
# applies ../recipe.yaml offline (no second boot of the VM) and writes the
# image to publish with its checksum.
#
#   packer init . && packer build .
#
# Needs qemu-system-x86, xorriso (for the cloud-init CD) and imgbake on the
# host. accelerator = "tcg" works on hosts without KVM, such as hosted CI
# runners; use "kvm" where it works.

packer {
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
  }
}

variable "base_image_url" {
  type    = string
  default = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
}

variable "base_image_checksum" {
  type    = string
  default = "file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"
}

variable "accelerator" {
  type    = string
  default = "tcg"
}

source "qemu" "debian" {
  iso_url          = var.base_image_url
  iso_checksum     = var.base_image_checksum
  disk_image       = true
  disk_size        = "8G"
  format           = "qcow2"
  accelerator      = var.accelerator
  headless         = true
  memory           = 1024
  output_directory = "output-debian"
  vm_name          = "debian.qcow2"

  # cloud-init (NoCloud) gives the image's user a password for Packer's SSH.
  cd_label = "cidata"
  cd_content = {
    "meta-data" = ""
    "user-data" = <<-USERDATA
      #cloud-config
      ssh_pwauth: true
      chpasswd:
        expire: false
        users:
          - {name: debian, password: packer, type: text}
    USERDATA
  }
  ssh_username     = "debian"
  ssh_password     = "packer"
  ssh_timeout      = "30m"
  shutdown_command = "sudo shutdown -P now"
}

build {
  sources = ["source.qemu.debian"]

  # What needs the running VM: here, the newest packages.
  provisioner "shell" {
    inline = ["sudo apt-get update", "sudo DEBIAN_FRONTEND=noninteractive apt-get -y upgrade"]
  }

  # What does not: imgbake, offline, on the disk Packer wrote.
  post-processor "shell-local" {
    inline = [
      "imgbake check ../recipe.yaml",
      "imgbake run -a output-debian/debian.qcow2 -o golden.qcow2 --compress --checksum ../recipe.yaml",
      "sha256sum -c golden.qcow2.sha256",
    ]
  }
}
