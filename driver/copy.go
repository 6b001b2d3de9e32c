package driver

import (
	"errors"
	"strings"
	"unicode"
)

// COPY through database/sql. pgx stdlib sends a COPY without arguments
// through the simple protocol: COPY ... TO STDOUT then runs and its data is
// read and dropped; COPY ... FROM STDIN waits for data database/sql cannot
// send, until the context ends. pgwait runs COPY ... TO STDOUT the same way,
// and refuses COPY ... FROM STDIN at once with errCopyFromStdin rather than
// leave the connection waiting.

// errCopyFromStdin is returned for COPY ... FROM STDIN through database/sql.
var errCopyFromStdin = errors.New("pgwait: COPY ... FROM STDIN needs the COPY sub-protocol, which database/sql does not have: " +
	"use sql.Conn.Raw, (*driver.Conn).Primary and pgx's CopyFrom")

// copyKind reports whether query is a COPY to or from the client: fromStdin
// for COPY ... FROM STDIN, toStdout for COPY ... TO STDOUT.
func copyKind(query string) (fromStdin, toStdout bool) {
	if q := strings.TrimLeftFunc(query, unicode.IsSpace); len(q) < 4 || !strings.EqualFold(q[:4], "copy") {
		return false, false // not COPY: nothing to split (every Exec comes here)
	}
	f := strings.Fields(strings.ToLower(query))
	if len(f) == 0 || f[0] != "copy" {
		return false, false
	}
	for i := 1; i+1 < len(f); i++ {
		next := strings.TrimRight(f[i+1], ";")
		switch {
		case f[i] == "from" && next == "stdin":
			fromStdin = true
		case f[i] == "to" && next == "stdout":
			toStdout = true
		}
	}
	return fromStdin, toStdout
}
