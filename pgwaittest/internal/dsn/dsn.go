// Package dsn builds pgwait connection strings for pgwaittest and
// pgwaittest/docker.
package dsn

import "strings"

// Param is one key=value of a keyword/value connection string.
type Param struct{ Key, Value string }

// Build returns the pgwait DSN for a primary's keyword/value connection
// string and a replica's host:port: primary, then " pgwait_replicas=replica"
// (left out when replica is ""), then " key=value" for each param, values
// quoted as needed.
func Build(primary, replica string, params ...Param) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(primary))
	if replica != "" {
		params = append([]Param{{"pgwait_replicas", replica}}, params...)
	}
	for _, p := range params {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.Key)
		b.WriteByte('=')
		b.WriteString(Quote(p.Value))
	}
	return b.String()
}

// Quote returns v as a keyword/value connection string value: as it is,
// or in single quotes with backslashes and quotes escaped when it is empty or
// holds white space, a quote or a backslash.
func Quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
