package classify

import "strings"

// deniedFunctions are the built-in (and common extension) functions that
// write, take locks or depend on the primary connection's session state, so a
// query calling one must run on the primary. A '*' in a name stands for any
// text: "pg_advisory_*" covers pg_advisory_lock, pg_advisory_unlock_all ...
//
// Deliberately absent:
//   - pg_sequence_last_value: reads a sequence without touching it (it is what
//     the pg_sequences view calls); on a replica it may be ahead by up to 32
//     values, as the view itself is.
//   - pg_prewarm: only reads blocks into the cache of the server it runs on,
//     and works on a standby; to warm a given server, use a hint.
//   - lo_get: reads a large object by OID without opening it.
//   - current_setting and friends: SET statements are Session, which the
//     driver replays on every connection it uses.
//   - query_to_xml, ts_stat and other functions that run SQL text: like user
//     functions, the replica refuses what they write.
var deniedFunctions = []string{
	// sequences: write, or read the primary connection's session state
	"nextval", "setval", "currval", "lastval",
	// transaction ids and snapshots
	"txid_current", "pg_current_xact_id", "pg_export_snapshot",
	// session state
	"set_config", "setseed",
	// notifications and advisory locks
	"pg_notify",
	"pg_advisory_*", "pg_try_advisory_*",
	// large objects: every function that writes or uses a descriptor
	"lo_create", "lo_creat", "lo_import", "lo_export", "lo_unlink", "lo_put",
	"lo_from_bytea", "lo_open", "lo_close", "lo_write", "lowrite", "loread",
	"lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64", "lo_truncate", "lo_truncate64",
	// server administration
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
	"pg_switch_wal", "pg_create_restore_point", "pg_promote",
	"pg_wal_replay_pause", "pg_wal_replay_resume", "pg_log_standby_snapshot",
	"pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
	"pg_import_system_collations", "pg_log_backend_memory_contexts",
	// primary-only: fail during recovery with an error the driver does not retry
	"pg_current_wal_*", "pg_current_xlog_*", "pg_walfile_name*", "pg_xlogfile_name*",
	// statistics, catalogs and server files
	"pg_stat_reset*", "pg_stat_statements_reset",
	"pg_restore_*_stats", "pg_clear_*_stats", // planner statistics (pg_dump 18 emits these)
	"pg_nextoid", "pg_extension_config_dump", "binary_upgrade_*",
	"pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync",
	// replication slots, origins and logical decoding
	"pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
	"pg_drop_replication_slot", "pg_copy_*_replication_slot", "pg_replication_slot_advance",
	"pg_replication_origin_*", "pg_logical_emit_message", "pg_logical_slot_*",
	// index maintenance
	"brin_summarize_*", "brin_desummarize_range", "gin_clean_pending_list",
	"pg_truncate_visibility_map",
	// remote execution and cursors of the primary connection
	"dblink", "dblink_*", "cursor_to_xml*",
}

// callReasons maps a denied function name to its Reason; callPrefixes holds
// the names with a '*', split around it.
var (
	callReasons  = map[string]string{}
	callPrefixes []wildcard
	// Cheap filters ahead of the lookups: most calls (count, coalesce, now,
	// ANY, IN) are ruled out by their length or first letter.
	shortestCall  = maxNameLen
	longestCall   = 0
	wildcardFirst [256]bool
)

// wildcard is a denied name pattern with one '*'.
type wildcard struct {
	prefix, suffix, reason string
}

func init() {
	for _, name := range deniedFunctions {
		reason := "calls " + name + "()"
		if star := strings.IndexByte(name, '*'); star >= 0 {
			callPrefixes = append(callPrefixes, wildcard{name[:star], name[star+1:], reason})
			wildcardFirst[name[0]] = true
			continue
		}
		callReasons[name] = reason
		shortestCall = min(shortestCall, len(name))
		longestCall = max(longestCall, len(name))
	}
}

// deniedCall returns the Reason for calling the function name, or "" if it
// is not denied. Unquoted names fold to lower case; a quoted name must match
// exactly.
func deniedCall(name string, quoted bool) string {
	if len(name) == 0 || len(name) > maxNameLen {
		return ""
	}
	exact := shortestCall <= len(name) && len(name) <= longestCall
	wild := wildcardFirst[toLower(name[0])]
	if !exact && !wild {
		return ""
	}
	var buf [maxNameLen]byte
	lower := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !quoted {
			c = toLower(c)
		}
		lower[i] = c
	}
	if exact {
		if reason, ok := callReasons[string(lower)]; ok {
			return reason
		}
	}
	if wild {
		for _, w := range callPrefixes {
			if len(lower) >= len(w.prefix)+len(w.suffix) &&
				string(lower[:len(w.prefix)]) == w.prefix &&
				string(lower[len(lower)-len(w.suffix):]) == w.suffix {
				return w.reason
			}
		}
	}
	return ""
}

// pinningFunctions are the functions whose effect stays in the session of the
// server that runs them (see Result.Pins). Transaction-level advisory locks
// (pg_advisory_xact_lock) end with the statement's transaction and do not pin.
var pinningFunctions = map[string]bool{
	"set_config": true, "setseed": true,
	"pg_advisory_lock": true, "pg_advisory_lock_shared": true,
	"pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true,
	"dblink_connect": true, "dblink_connect_u": true, "dblink_open": true,
	"lo_open": true,
}

// pinningCall reports whether the word before a '(' names a pinning
// function. Unquoted names fold to lower case; a quoted name must match
// exactly; a U&"..." name could spell any of them.
func pinningCall(name token) bool {
	switch name.kind {
	case tokWord:
		if len(name.text) > len("pg_try_advisory_lock_shared") {
			return false
		}
		var buf [len("pg_try_advisory_lock_shared")]byte
		lower := buf[:len(name.text)]
		for i := 0; i < len(name.text); i++ {
			lower[i] = toLower(name.text[i])
		}
		return pinningFunctions[string(lower)]
	case tokQuotedIdent:
		return pinningFunctions[name.text]
	case tokUnicodeIdent:
		return true
	}
	return false
}

// maxNameLen bounds the names deniedCall looks at; PostgreSQL truncates
// identifiers to 63 bytes.
const maxNameLen = 63

// commandReasons maps the first keyword of a non-query statement to its
// Reason.
var commandReasons = map[string]string{
	"insert": "INSERT statement", "update": "UPDATE statement",
	"delete": "DELETE statement", "merge": "MERGE statement",
	"copy": "COPY statement", "create": "CREATE statement",
	"alter": "ALTER statement", "drop": "DROP statement",
	"truncate": "TRUNCATE statement", "grant": "GRANT statement",
	"revoke": "REVOKE statement", "vacuum": "VACUUM statement",
	"analyze": "ANALYZE statement", "analyse": "ANALYZE statement",
	"cluster": "CLUSTER statement", "reindex": "REINDEX statement",
	"lock": "LOCK statement", "call": "CALL statement", "do": "DO statement",
	"notify": "NOTIFY statement", "listen": "LISTEN statement",
	"unlisten": "UNLISTEN statement", "execute": "EXECUTE statement",
	"deallocate": "DEALLOCATE statement", "discard": "DISCARD statement",
	"refresh": "REFRESH statement", "comment": "COMMENT statement",
	"security": "SECURITY LABEL statement", "import": "IMPORT FOREIGN SCHEMA statement",
	"load": "LOAD statement", "checkpoint": "CHECKPOINT statement",
	"declare": "DECLARE statement", "fetch": "FETCH statement",
	"move": "MOVE statement", "close": "CLOSE statement",
	"reassign": "REASSIGN statement", "wait": "WAIT statement",
}

// commandReason returns the Reason for a statement starting with word.
func commandReason(word string) string {
	const longest = len("checkpoint")
	if len(word) <= longest {
		var buf [longest]byte
		lower := buf[:len(word)]
		for i := 0; i < len(word); i++ {
			lower[i] = toLower(word[i])
		}
		if reason, ok := commandReasons[string(lower)]; ok {
			return reason
		}
	}
	return reasonUnrecognised
}
