package pgtest

import (
	"bytes"
	"context"
	_ "embed" // postgres19.sh
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WantMajor is the PostgreSQL major version FindBinaries looks for: the first
// with WAIT FOR LSN.
const WantMajor = 19

// ErrNoPostgres is wrapped by the errors of FindBinaries and FindOlderBinaries,
// and by Start's when the server binaries cannot be had. New and Shared skip
// the tests on it unless PostgreSQL is required (see New).
var ErrNoPostgres = errors.New("pgtest: no PostgreSQL server binaries")

// howToGet says what a developer can do about a missing PostgreSQL 19.
const howToGet = "run scripts/postgres19 (it fetches PostgreSQL 19 into a cache on Debian/Ubuntu x86_64) " +
	"and set PGWAIT_PG_BIN to the directory it prints, or install PostgreSQL 19 and set PGWAIT_PG_BIN to its bin directory"

//go:embed postgres19.sh
var fetchScript []byte

// scriptTimeout bounds one run of the embedded script (a fetch takes ~10 s).
const scriptTimeout = 10 * time.Minute

var findOnce = sync.OnceValues(findBinaries)

// FindBinaries returns the directory holding PostgreSQL 19's server binaries
// (postgres, initdb, pg_basebackup). It tries, in order:
//
//  1. $PGWAIT_PG_BIN, which must then hold PostgreSQL 19;
//  2. pg_config --bindir, the directory of postgres on PATH, and
//     /usr/lib/postgresql/19/bin, each if it holds PostgreSQL 19;
//  3. the embedded copy of scripts/postgres19, which uses its cache or fetches
//     Debian's postgresql-19 package into it (about 10 s, once per machine).
//
// The result, success or failure, is computed once per process. Failures wrap
// ErrNoPostgres and say what to do.
func FindBinaries() (dir string, err error) {
	return findOnce()
}

func findBinaries() (string, error) {
	if dir := os.Getenv("PGWAIT_PG_BIN"); dir != "" {
		major, err := MajorVersion(dir)
		if err != nil {
			return "", fmt.Errorf("%w: PGWAIT_PG_BIN=%s: %v; unset it or point it at PostgreSQL %d's bin directory",
				ErrNoPostgres, dir, err, WantMajor)
		}
		if major != WantMajor {
			return "", fmt.Errorf("%w: PGWAIT_PG_BIN=%s holds PostgreSQL %d, not %d; unset it or point it at PostgreSQL %d's bin directory",
				ErrNoPostgres, dir, major, WantMajor, WantMajor)
		}
		return dir, nil
	}
	for _, dir := range candidateDirs() {
		if major, err := MajorVersion(dir); err == nil && major == WantMajor {
			return dir, nil
		}
	}
	dir, err := runFetchScript()
	if err != nil {
		return "", fmt.Errorf("%w: no PostgreSQL %d is installed, and fetching it failed: %v\nTo fix: %s",
			ErrNoPostgres, WantMajor, err, howToGet)
	}
	return dir, nil
}

// candidateDirs lists the bin directories of installed servers that
// FindBinaries looks at before the fetch script.
func candidateDirs() []string {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			dirs = append(dirs, d)
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	return append(dirs, fmt.Sprintf("/usr/lib/postgresql/%d/bin", WantMajor))
}

// runFetchScript writes the embedded script to a temporary file, runs it with
// bash and returns the directory it prints last.
func runFetchScript() (string, error) {
	f, err := os.CreateTemp("", "pgwait-postgres19-*.sh")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(fetchScript); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", f.Name())
	// The fetch prints a few progress lines: let them through, it takes a while.
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/postgres19: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Fields(strings.TrimSpace(stdout.String()))
	if len(lines) == 0 {
		return "", fmt.Errorf("scripts/postgres19 printed no directory: %s", strings.TrimSpace(stderr.String()))
	}
	dir := lines[len(lines)-1]
	if _, err := MajorVersion(dir); err != nil {
		return "", fmt.Errorf("scripts/postgres19 printed %s: %v", dir, err)
	}
	return dir, nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// MajorVersion runs dir/postgres --version and returns the major version
// number it reports (19 for "postgres (PostgreSQL) 19rc1").
func MajorVersion(dir string) (int, error) {
	bin := filepath.Join(dir, "postgres")
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("no postgres binary in %s", dir)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s --version printed %q, not a PostgreSQL version", bin, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(string(m[1]))
}

// FindOlderBinaries returns the bin directory and major version of the newest
// PostgreSQL older than 19 (without WAIT FOR LSN) on this machine, for tests
// of the fallback path: $PGWAIT_PG_OLD_BIN if set, else the newest
// /usr/lib/postgresql/N/bin with N < 19 (Debian's layout; Debian 12 has 15).
// Its error wraps ErrNoPostgres when there is none.
func FindOlderBinaries() (dir string, major int, err error) {
	if dir := os.Getenv("PGWAIT_PG_OLD_BIN"); dir != "" {
		major, err := MajorVersion(dir)
		if err != nil {
			return "", 0, fmt.Errorf("%w: PGWAIT_PG_OLD_BIN=%s: %v", ErrNoPostgres, dir, err)
		}
		if major >= WantMajor {
			return "", 0, fmt.Errorf("%w: PGWAIT_PG_OLD_BIN=%s holds PostgreSQL %d, want one older than %d",
				ErrNoPostgres, dir, major, WantMajor)
		}
		return dir, major, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type found struct {
		dir   string
		major int
	}
	var all []found
	for _, d := range dirs {
		if m, err := MajorVersion(d); err == nil && m < WantMajor {
			all = append(all, found{d, m})
		}
	}
	if len(all) == 0 {
		return "", 0, fmt.Errorf("%w: no PostgreSQL older than %d under /usr/lib/postgresql/*/bin; "+
			"install one (Debian 12: apt-get install postgresql-15) or set PGWAIT_PG_OLD_BIN", ErrNoPostgres, WantMajor)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].major > all[j].major })
	return all[0].dir, all[0].major, nil
}
