package classify

import (
	"strings"
	"testing"
)

// FuzzClassify checks properties that hold for any text: Classify never
// panics, blanks and comments in front change nothing, and a Read stays
// protected against what may be appended or prepended to it.
func FuzzClassify(f *testing.F) {
	for _, rec := range readCorpus(f) {
		f.Add(rec.sql)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		got := Classify(sql)
		checkInvariants(t, sql, got)

		for _, prefixed := range []string{"/* c */ " + sql, "\n  " + sql} {
			if other := Classify(prefixed); other.Kind != got.Kind || other.Hint != got.Hint {
				t.Errorf("Classify(%q) = %+v but Classify(%q) = %+v", sql, got, prefixed, other)
			}
		}

		if got.Kind != Read {
			return
		}
		// A trailing line comment would swallow the appended statement, as it
		// would on the server: start it on a new line then.
		suffix := "; DELETE FROM t"
		if endsInLineComment(sql) {
			suffix = "\n" + suffix
		}
		if r := Classify(sql + suffix); r.Kind != Write {
			t.Errorf("Classify(%q) = %+v, want a Write", sql+suffix, r)
		}
		if r := Classify("INSERT INTO t " + sql); r.Kind == Read {
			t.Errorf("Classify(%q) = %+v, want no Read", "INSERT INTO t "+sql, r)
		}
	})
}

// endsInLineComment reports whether sql ends inside a -- comment.
func endsInLineComment(sql string) bool {
	lx := lexer{src: sql}
	end := 0
	for lx.next().kind != tokEOF {
		end = lx.pos
	}
	// Only blanks and comments follow end: walk them.
	tail := lexer{src: sql, pos: end}
	for tail.pos < len(sql) {
		rest := sql[tail.pos:]
		switch {
		case strings.HasPrefix(rest, "--"):
			newline := strings.IndexAny(rest, "\r\n")
			if newline < 0 {
				return true
			}
			tail.pos += newline
		case strings.HasPrefix(rest, "/*"):
			tail.blockComment()
		default:
			tail.pos++
		}
	}
	return false
}

func TestEndsInLineComment(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                false,
		"SELECT 1 -- x":           true,
		"SELECT 1 -- x\n":         false,
		"SELECT 1 -- x\n/* y */":  false,
		"SELECT 1 /* -- */":       false,
		"SELECT '--'":             false,
		"SELECT 1 /* a */ -- b":   true,
		"-- only":                 true,
		"SELECT 1 --\n-- two":     true,
		"SELECT 1 /* */--":        true,
		"SELECT 1 /* -- */ \t -x": false,
	} {
		if got := endsInLineComment(sql); got != want {
			t.Errorf("endsInLineComment(%q) = %v, want %v", sql, got, want)
		}
	}
}

// benchmarkStatements are typical of what an application sends.
var benchmarkStatements = []struct{ name, sql string }{
	{"select-pk", `SELECT "users"."id", "users"."email", "users"."name" FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL LIMIT 1`},
	{"select-200B", `SELECT o.id, o.total, o.status, u.email FROM orders o JOIN users u ON u.id = o.user_id WHERE o.created_at > now() - interval '7 days' AND o.status = ANY($1::text[]) ORDER BY o.created_at DESC LIMIT 50`},
	{"select-for-update", `SELECT id FROM jobs WHERE state = 'available' ORDER BY priority, id LIMIT 10 FOR UPDATE SKIP LOCKED`},
	{"insert-returning", `INSERT INTO "users" ("created_at","updated_at","name","email") VALUES ($1,$2,$3,$4) RETURNING "id"`},
	{"cte-read", `WITH recent AS (SELECT user_id, count(*) AS n FROM orders WHERE created_at > $1 GROUP BY user_id) SELECT u.id, u.email, r.n FROM users u JOIN recent r ON r.user_id = u.id /* pgwait:replica */`},
	{"set", `SET search_path TO app, public`},
}

func BenchmarkClassify(b *testing.B) {
	for _, bs := range benchmarkStatements {
		b.Run(bs.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bs.sql)))
			for b.Loop() {
				Classify(bs.sql)
			}
		})
	}
}
