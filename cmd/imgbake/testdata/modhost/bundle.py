# Prints the module host request the connection plugin sends for the
# payload on stdin, with the controller-compiled modules of its zip:
#   bundle.py REPO ok|badmagic|tamper|tamper-main
# badmagic tags the blob with another bytecode magic; tamper replaces the
# code of ansible/modules/ping.py by code printing "from the bundle",
# tamper-main the script's (so a test sees that the host runs the
# controller's code).
import json
import marshal
import struct
import sys
import warnings

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

# As ansible-playbook finds the collection: ANSIBLE_COLLECTIONS_PATH=REPO.
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
warnings.filterwarnings("ignore", "AnsibleCollectionFinder has already been configured")
from ansible_collections.imgbake.disk.plugins.connection import imgbake as plugin  # noqa: E402

mode = sys.argv[2]
payload = sys.stdin.buffer.read()
blob, keys = plugin._compiled_bundle(payload, set())
if mode == "tamper":
    bundle = marshal.loads(blob)
    crc = bundle["files"]["ansible/modules/ping.py"][0]
    bundle["files"]["ansible/modules/ping.py"] = (crc, compile("print('from the bundle')\n", "x", "exec", dont_inherit=True))
    blob = marshal.dumps(bundle)
if mode == "tamper-main":
    bundle = marshal.loads(blob)
    bundle["main"] = compile("print('main from the bundle')\n", "<stdin>", "exec", dont_inherit=True)
    blob = marshal.dumps(bundle)
magic = plugin._MAGIC if mode != "badmagic" else "00000000"
header = json.dumps({"compiled": {"magic": magic, "optimize": sys.flags.optimize, "size": len(blob)}}).encode()
sys.stdout.buffer.write(struct.pack(">I", len(header)) + header + blob + payload)
