# Prints a real AnsiballZ payload of a module, as Ansible pipelines it:
#   payload.py MODULE JSON_ARGS
import json
import sys

from ansible.executor.module_common import modify_module
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import module_loader
from ansible.template import Templar

name, args = sys.argv[1], json.loads(sys.argv[2])
path = module_loader.find_plugin(name, ".py")
data, _, _ = modify_module(name, path, args, Templar(loader=DataLoader()), task_vars={"ansible_python_interpreter": "/usr/bin/python3"})
sys.stdout.buffer.write(data)
