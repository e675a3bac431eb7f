#!/usr/bin/python3
# A test module that fails the ways a module can: mode=raise (an uncaught
# exception), mode=segv (the interpreter dies of a signal), mode=stderr
# (succeeds, with noise on stderr), mode=exit (sys.exit(5) without JSON).
import os
import signal
import sys

from ansible.module_utils.basic import AnsibleModule


def main():
    m = AnsibleModule(argument_spec={"mode": {"type": "str", "required": True}}, supports_check_mode=True)
    mode = m.params["mode"]
    if mode == "raise":
        raise RuntimeError("crashy: raised on purpose")
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "exit":
        sys.stdout.write("not json\n")
        sys.exit(5)
    if mode == "stderr":
        sys.stderr.write("crashy: a warning on stderr\n")
        m.exit_json(changed=not m.check_mode, mode=mode, check=m.check_mode)
    m.fail_json(msg="unknown mode %s" % mode)


if __name__ == "__main__":
    main()
