// Package api is what a session's client and its daemon agree on: the
// requests and results on the control socket, the files in a session's
// directory and where those directories live.
//
// A session is a background process (`imgbake session serve`, started by
// `imgbake session start`) that owns one booted appliance with the image
// mounted on a private overlay. Clients talk to it over a unix socket in a
// private directory, one connection per request, framed like the agent
// channel (appliance/proto, stream 1):
//
//   - the client sends a TCall frame holding a JSON Request, then, when
//     Request.Stdin is set, its input as TData frames ended by TEOF; a
//     TCancel frame (or closing the connection) cancels the request;
//   - the daemon answers with TStdout, TStderr and TData frames (a command's
//     output, a fetched file) and ends with one TResult frame holding a
//     JSON Result.
//
// The package holds no logic of either side beyond these facts; see
// package session for the daemon and the client.
package api

import "time"

// ExitSession is `session exec`'s exit code when the session itself failed
// (not the command), as ssh uses 255.
const ExitSession = 255

// Request operations.
const (
	OpExec   = "exec"   // run a command in the image
	OpPut    = "put"    // copy host data into the image
	OpFetch  = "fetch"  // copy image data out to the host
	OpRun    = "run"    // apply a recipe
	OpStatus = "status" // describe the session (Result.Status)
	OpStop   = "stop"   // shut down, commit or discard
	// OpService sends one request (the connection's input, whole) to the
	// long-lived process Request.Service of the session, started with
	// Argv, Env and Dir on the first such request, and answers with its
	// reply as TData. Result.NoService says it could not be started.
	OpService = "service"
)

// The frames between the daemon and a service process, on its stdin and
// stdout: one type byte, a 4-byte big-endian length, the payload.
const (
	ServiceHello   = 'H' // service→daemon, once: ready (a line for the log)
	ServiceAnswer  = 'A' // service→daemon: the reply to the request
	ServiceRequest = 'Q' // daemon→service: one request
	ServiceCancel  = 'C' // daemon→service: cancel the request being served
	// ServiceMaxFrame bounds one request or answer.
	ServiceMaxFrame = 1 << 30
)

// Request is the JSON of a request's TCall frame.
type Request struct {
	Op string `json:"op"` // one of the Op constants

	// exec
	Argv      []string `json:"argv,omitempty"`
	Env       []string `json:"env,omitempty"`
	Dir       string   `json:"dir,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	Stdin     bool     `json:"stdin,omitempty"` // TData/TEOF follow (exec, put from "-")

	// put, fetch: Host "" means the data travels on the connection.
	Host  string  `json:"host,omitempty"`
	Image string  `json:"image,omitempty"`
	Exact bool    `json:"exact,omitempty"` // the paths name the file itself, never a directory to put it into
	Mode  *uint32 `json:"mode,omitempty"`  // unix mode bits (setuid 04000, setgid 02000, sticky 01000)
	Owner string  `json:"owner,omitempty"`

	// run
	Recipe   string   `json:"recipe,omitempty"`
	VarsFile string   `json:"vars_file,omitempty"`
	Vars     []string `json:"vars,omitempty"`
	Force    bool     `json:"force,omitempty"`
	JSON     bool     `json:"json,omitempty"`
	Verbose  bool     `json:"verbose,omitempty"`

	// stop
	Discard bool `json:"discard,omitempty"`

	// service: the key naming it (one process per key and session)
	Service string `json:"service,omitempty"`
}

// Result is the JSON of the TResult frame that ends a request.
type Result struct {
	RC       int     `json:"rc"`
	Signal   string  `json:"signal,omitempty"`
	TimedOut bool    `json:"timed_out,omitempty"`
	Error    string  `json:"error,omitempty"`
	Code     int     `json:"code,omitempty"` // exit code for Error
	Detail   string  `json:"detail,omitempty"`
	Status   *Status `json:"status,omitempty"`
	// NoService: the service could not be started (Error says why); a
	// client may do the work another way.
	NoService bool `json:"no_service,omitempty"`
}

// Status describes a running session (the status request, session list).
type Status struct {
	Name        string          `json:"name"`
	PID         int             `json:"pid"`
	State       string          `json:"state"`
	Disks       []string        `json:"disks"`
	Started     time.Time       `json:"started"`
	Requests    int64           `json:"requests"`
	Active      int             `json:"active"`
	IdleMS      int64           `json:"idle_ms"` // -1 when unknown or busy
	IdleTimeout string          `json:"idle_timeout,omitempty"`
	OwnerPID    int             `json:"owner_pid,omitempty"`
	Boots       int64           `json:"boots"`
	Network     bool            `json:"network,omitempty"`
	Services    []ServiceStatus `json:"services,omitempty"`
}

// ServiceStatus counts a service's starts and requests in a session.
type ServiceStatus struct {
	Key      string `json:"key"`
	Starts   int64  `json:"starts"`
	Requests int64  `json:"requests"`
	Running  bool   `json:"running"`
}

// Report is what the daemon writes, once, on the ready pipe its starter
// gave it: the session is up, or why it is not.
type Report struct {
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"` // exit code for Error
	Boot  string `json:"boot,omitempty"` // how the appliance came up, for -v
}
