package fsops

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// AskPassword reads the new password of user: twice without echo when in
// is a terminal (the prompts go to prompt), else the first line of in.
func AskPassword(in io.Reader, prompt io.Writer, user string) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(prompt, "New password for %s: ", user)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprintf(prompt, "Retype the new password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords do not match; nothing was changed")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err != nil {
			return "", errors.New("no password given: use --password-file, --random, or type it on a terminal")
		}
		return "", errors.New("the password is empty")
	}
	return line, nil
}
