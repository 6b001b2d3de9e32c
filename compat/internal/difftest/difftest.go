// Package difftest runs an ORM workload twice, once through pgx stdlib on the
// primary and once through pgwait on the primary and the replica, and
// compares what the two runs saw: the differential idea of the root module's
// internal/conformance suite, applied to the libraries in compat/.
//
// A workload is one function taking a *sql.DB; it builds its ORM handle on
// it, runs a realistic sequence of calls and records every outcome (values,
// RowsAffected, errors as SQLSTATE and message) in a Transcript. Run gives
// each side a database of its own, created for the run, so that both start
// from the same empty state and serial ids, default names and catalogs come
// out the same. Any step whose outcome differs fails the test, unless
// Deliberate lists it with its reason. PGWAIT_DIFF_TRANSCRIPT=1 logs the
// pgwait run's whole transcript.
package difftest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx", the reference
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/compattest"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
)

// Transcript is what one run of a workload saw, step by step.
type Transcript struct {
	steps []step
	names map[string]bool
}

type step struct{ name, out string }

// Record records the outcome of the step called name: its value, formatted
// by Format, and its error, formatted by ErrText. Step names are unique
// within a transcript.
func (tr *Transcript) Record(name string, v any, err error) {
	if tr.names == nil {
		tr.names = map[string]bool{}
	}
	if tr.names[name] {
		panic("difftest: step recorded twice: " + name)
	}
	tr.names[name] = true
	tr.steps = append(tr.steps, step{name, normalize(Format(v) + " | " + ErrText(err))})
}

// Do runs f and records its outcome as the step called name.
func (tr *Transcript) Do(name string, f func() (any, error)) {
	v, err := f()
	tr.Record(name, v, err)
}

// String returns the whole transcript, one step a line.
func (tr *Transcript) String() string {
	var b strings.Builder
	for _, s := range tr.steps {
		fmt.Fprintf(&b, "%s: %s\n", s.name, s.out)
	}
	return b.String()
}

// ErrText is how an error appears in a transcript: SQLSTATE, message and
// detail for a server error (however wrapped), the error's text otherwise.
func ErrText(err error) string {
	if err == nil {
		return "<nil>"
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		s := "SQLSTATE " + pgErr.Code + ": " + pgErr.Message
		if pgErr.Detail != "" {
			s += " (" + pgErr.Detail + ")"
		}
		return s
	}
	return err.Error()
}

// stmtNames are the names pgx and pgwait give prepared statements, which may
// appear in error messages; they differ between the runs by design.
var stmtNames = regexp.MustCompile(`(stmt|stmtcache|pgwait)_[0-9a-f]{16,}`)

func normalize(s string) string { return stmtNames.ReplaceAllString(s, "STMT") }

// Format formats a value for a transcript: pointers followed, struct fields
// named (exported ones only), map keys sorted, times with their location,
// byte slices quoted, nil and empty slices told apart.
func Format(v any) string {
	var b strings.Builder
	format(&b, reflect.ValueOf(v), 0)
	return b.String()
}

func format(b *strings.Builder, v reflect.Value, depth int) {
	if depth > 12 {
		b.WriteString("…")
		return
	}
	if !v.IsValid() {
		b.WriteString("nil")
		return
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case time.Time:
			b.WriteString(x.Format(time.RFC3339Nano) + " " + x.Location().String())
			return
		case []byte:
			if x == nil {
				b.WriteString("[]byte(nil)")
			} else {
				fmt.Fprintf(b, "%q", x)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		if v.Kind() == reflect.Pointer {
			b.WriteString("&")
		}
		format(b, v.Elem(), depth+1)
	case reflect.Struct:
		b.WriteString(v.Type().String() + "{")
		first := true
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(f.Name + ":")
			format(b, v.Field(i), depth+1)
		}
		b.WriteString("}")
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString(v.Type().String() + "(nil)")
			return
		}
		b.WriteString("[")
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			format(b, v.Index(i), depth+1)
		}
		b.WriteString("]")
	case reflect.Map:
		if v.IsNil() {
			b.WriteString(v.Type().String() + "(nil)")
			return
		}
		var kv []string
		for _, k := range v.MapKeys() {
			var e strings.Builder
			format(&e, k, depth+1)
			e.WriteString(": ")
			format(&e, v.MapIndex(k), depth+1)
			kv = append(kv, e.String())
		}
		sort.Strings(kv)
		b.WriteString("map[" + strings.Join(kv, ", ") + "]")
	default:
		if v.CanInterface() {
			fmt.Fprintf(b, "%T(%#v)", v.Interface(), v.Interface())
		} else {
			fmt.Fprint(b, v)
		}
	}
}

// Options says how Run opens the two sides.
type Options struct {
	// Name names the run, and prefixes its entries in Deliberate
	// ("gorm/after AutoMigrate v2: First").
	Name string
	// DSN holds connection settings added to both sides' connection strings
	// ("default_query_exec_mode=simple_protocol").
	DSN string
}

// ErrOpen wraps the error of a side that could not be opened with
// Options.DSN: a workload's test may skip on it.
var ErrOpen = errors.New("difftest: cannot open")

// Run runs workload through pgx stdlib on the primary and through pgwait on
// the primary and the replica, each on a fresh database, and fails t on any
// step whose outcome differs and Deliberate does not list under opts.Name.
// pgwait must have served reads on the replica, some of them after waiting
// for it, with no wait timed out and no read fallen back to the primary. Each handle is limited to one
// connection. It returns an error wrapping ErrOpen, without running
// anything, when a side cannot be opened.
func Run(t *testing.T, opts Options, workload func(t *testing.T, db *sql.DB, tr *Transcript)) error {
	t.Helper()
	c := compattest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dsns := map[string]string{
		"pgx":    c.PrimaryDSN() + " dbname=" + newDatabase(ctx, t, false) + " " + opts.DSN,
		"pgwait": compattest.DSN(t, "dbname="+newDatabase(ctx, t, true), "pgwait_on_timeout=error", opts.DSN),
	}
	open := func(driverName string) (*sql.DB, error) {
		db, err := sql.Open(driverName, dsns[driverName])
		if err == nil {
			err = db.PingContext(ctx)
		}
		if err != nil {
			if db != nil {
				db.Close()
			}
			return nil, fmt.Errorf("%w %s with %q: %w", ErrOpen, driverName, opts.DSN, err)
		}
		// One connection: the runs are then deterministic, pgx stdlib's
		// once-per-connection errors after DDL among them.
		db.SetMaxOpenConns(1)
		return db, nil
	}
	std, err := open("pgx")
	if err != nil {
		return err
	}
	defer std.Close()
	pw, err := open("pgwait")
	if err != nil {
		return err
	}
	defer pw.Close()

	var want, got Transcript
	workload(t, std, &want)
	before := compattest.Stats(t, pw)
	workload(t, pw, &got)
	d := compattest.Sub(compattest.Stats(t, pw), before)
	t.Logf("pgwait stats over the workload: %+v", d)
	require.Positive(t, d.ReplicaReads, "pgwait served no read of the workload on the replica")
	require.Zero(t, d.WaitTimeouts, "pgwait's waits timed out")
	require.Zero(t, d.Fallbacks, "pgwait's reads fell back to the primary")
	require.Positive(t, d.Waits, "no read of pgwait's waited for the replica: the workload does not show read-your-writes")
	if os.Getenv("PGWAIT_DIFF_TRANSCRIPT") != "" {
		t.Logf("pgwait's transcript:\n%s", &got)
	}
	Compare(t, opts.Name, &want, &got)
	return nil
}

// Compare fails t on each step whose outcome differs between want (pgx
// stdlib) and got (pgwait), except those Deliberate lists under name, and on
// each entry of Deliberate under name that no longer differs.
func Compare(t testing.TB, name string, want, got *Transcript) {
	t.Helper()
	compare(t, name, want, got, Deliberate)
}

func compare(t testing.TB, name string, want, got *Transcript, deliberate map[string]string) {
	t.Helper()
	if len(want.steps) != len(got.steps) {
		t.Errorf("%s: pgx stdlib ran %d steps, pgwait %d\npgx stdlib:\n%s\npgwait:\n%s", name, len(want.steps), len(got.steps), want, got)
		return
	}
	differs := map[string]bool{}
	for i, w := range want.steps {
		g := got.steps[i]
		if w.name != g.name {
			t.Errorf("%s: step %d is %q through pgx stdlib, %q through pgwait", name, i, w.name, g.name)
			return
		}
		key := name + "/" + w.name
		if w.out == g.out {
			continue
		}
		differs[key] = true
		if reason, ok := deliberate[key]; ok {
			t.Logf("deliberate difference at %q: %s\npgx stdlib: %s\npgwait:     %s", w.name, reason, w.out, g.out)
			continue
		}
		t.Errorf("%s: step %q differs\npgx stdlib: %s\npgwait:     %s", name, w.name, w.out, g.out)
	}
	var keys []string
	for key := range deliberate {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if strings.HasPrefix(key, name+"/") && !differs[key] {
			t.Errorf("Deliberate lists %q (%s), but the runs agree there, or it is no step", key, deliberate[key])
		}
	}
}

// DriverName returns the name db's driver is registered under: "pgwait" or
// "pgx".
func DriverName(db *sql.DB) string {
	if _, ok := db.Driver().(pgwaitdriver.Driver); ok {
		return "pgwait"
	}
	return "pgx"
}

// newDatabase creates a database for one side of a run, on the primary, and
// waits for the replica to have it when pgwait will connect to it there.
func newDatabase(ctx context.Context, t *testing.T, replica bool) string {
	t.Helper()
	c := compattest.Cluster(t)
	name := strings.ToLower(compattest.Name("diff"))
	p, err := pgx.Connect(ctx, c.PrimaryDSN())
	require.NoError(t, err)
	defer p.Close(context.Background())
	_, err = p.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	if replica {
		r, err := pgx.Connect(ctx, c.ReplicaDSN(0))
		require.NoError(t, err)
		defer r.Close(context.Background())
		require.Eventually(t, func() bool {
			var ok bool
			err := r.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&ok)
			return err == nil && ok
		}, 30*time.Second, 10*time.Millisecond, "the replica never got database %s", name)
	}
	return name
}
