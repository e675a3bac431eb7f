# bash completion for imgbake.
# Adapted from urfave/cli v2's autocomplete/bash_autocomplete (MIT): the
# command line so far is run with --generate-bash-completion, which makes
# imgbake print the commands or flags that may come next. Files complete
# as usual when it offers nothing.
_imgbake() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _imgbake imgbake
