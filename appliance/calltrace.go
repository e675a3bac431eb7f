package appliance

// callTrace, when set, sees every request's op and JSON arguments before
// they are sent.
var callTrace func(op string, args []byte)

// SetCallTrace sets a function that sees the op and JSON arguments of
// every request any Session sends to its agent (nil: none), for tests
// that assert what crosses the channel (that no passphrase does). It must
// not keep args: the buffer is wiped after the send. Not for concurrent
// use with running sessions.
func SetCallTrace(f func(op string, args []byte)) { callTrace = f }
