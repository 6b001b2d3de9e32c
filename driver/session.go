package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"fmt"
	"strings"
)

// Session state. A pgwait connection's statements may run on several
// servers, each with a session of its own, and the session that answers a
// statement must hold the same state as the one the application set it on.
// The rule:
//
//   - SET, RESET, SET ROLE, SET SESSION AUTHORIZATION (the classifier's
//     Session statements) run on the primary, then on every replica
//     connection open, and are replayed on those opened later.
//   - A statement that leaves state only the server that ran it can have
//     (classify.Result.Pins: temporary tables, set_config(), PREPARE,
//     DECLARE, LISTEN, LOAD, session advisory locks) runs on the primary and
//     pins the connection there: every later statement runs on the primary
//     too, until DISCARD ALL, which also closes the replica connections (new
//     ones start clean).
//   - A SET inside a transaction block opened with SQL pins too: a ROLLBACK
//     would undo it on the primary only.

// sessionSetting is one SET or RESET to replay, keyed by the setting it
// changes.
type sessionSetting struct{ key, sql string }

// setSession runs a session-level SET or RESET on the primary and on every
// open replica connection, and remembers it for those opened later.
func (c *Conn) setSession(ctx context.Context, query string, args []any) (sqldriver.Result, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	inBlock := c.primaryInBlock()
	tag, err := s.exec(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if inBlock || len(args) > 0 {
		c.pin()
		return result(tag, nil)
	}
	for _, rs := range c.sides {
		if _, err := rs.exec(ctx, query, nil); err != nil {
			c.dropSide(rs)
		}
	}
	c.rememberSetting(query)
	return result(tag, nil)
}

// pin keeps every later statement of the connection on the primary.
func (c *Conn) pin() {
	if !c.pinned {
		c.pinned = true
		c.c.stats.pins.Add(1)
	}
}

// discarded records a DISCARD ALL the primary ran: its session is new, so
// the connection is unpinned, forgets its settings, and closes its replica
// connections (new ones start as clean).
func (c *Conn) discarded() {
	c.pinned = false
	c.settings = c.settings[:0]
	c.dropReplicaSides()
}

// replaySettings runs the connection's session settings on a server
// connection just opened.
func (c *Conn) replaySettings(ctx context.Context, s *side) error {
	for _, set := range c.settings {
		if err := s.simple(ctx, set.sql); err != nil {
			return fmt.Errorf("pgwait: replaying %q on a new server connection: %w", set.sql, err)
		}
	}
	return nil
}

// rememberSetting keeps the latest SET of each setting, in order; RESET ALL
// forgets them all.
func (c *Conn) rememberSetting(query string) {
	key := sessionKey(query)
	if key == "all" {
		c.settings = c.settings[:0]
		return
	}
	for i, s := range c.settings {
		if s.key == key {
			c.settings = append(c.settings[:i], c.settings[i+1:]...)
			break
		}
	}
	c.settings = append(c.settings, sessionSetting{key: key, sql: query})
}

// sessionKey names the setting a SET or RESET statement changes, lower case:
// "search_path" for "SET SESSION search_path TO app". Best effort: an
// unusual form keys on its whole text, which only means it is kept along
// with the others.
func sessionKey(query string) string {
	f := strings.Fields(strings.ToLower(strings.ReplaceAll(query, "=", " = ")))
	for len(f) > 0 && (f[0] == "set" || f[0] == "reset" || f[0] == "session") {
		f = f[1:]
	}
	if len(f) == 0 {
		return query
	}
	return strings.TrimSuffix(f[0], ";")
}

// isDiscardAll reports DISCARD ALL, which resets the whole session.
func isDiscardAll(query string) bool {
	f := strings.Fields(strings.ToLower(query))
	return len(f) >= 2 && f[0] == "discard" && strings.TrimSuffix(f[1], ";") == "all"
}
