package driver

import (
	sqldriver "database/sql/driver"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// resultFormats is pgx stdlib's choice of result formats: binary for the
// intrinsic types database/sql has a Go type for, text for everything else.
// pgwait chooses the same so that a row scans identically whichever server
// or path produced it.
var resultFormats = pgx.QueryResultFormatsByOID{
	pgtype.BoolOID:        pgx.BinaryFormatCode,
	pgtype.ByteaOID:       pgx.BinaryFormatCode,
	pgtype.CIDOID:         pgx.BinaryFormatCode,
	pgtype.DateOID:        pgx.BinaryFormatCode,
	pgtype.Float4OID:      pgx.BinaryFormatCode,
	pgtype.Float8OID:      pgx.BinaryFormatCode,
	pgtype.Int2OID:        pgx.BinaryFormatCode,
	pgtype.Int4OID:        pgx.BinaryFormatCode,
	pgtype.Int8OID:        pgx.BinaryFormatCode,
	pgtype.OIDOID:         pgx.BinaryFormatCode,
	pgtype.TimestampOID:   pgx.BinaryFormatCode,
	pgtype.TimestamptzOID: pgx.BinaryFormatCode,
	pgtype.XIDOID:         pgx.BinaryFormatCode,
}

// valueFunc turns one column's wire bytes into a database/sql value.
type valueFunc func(src []byte) (sqldriver.Value, error)

// valueFuncs builds the converters for a statement's columns, the same
// conversions pgx stdlib makes. Each converter keeps scratch space, so the set
// belongs to one connection (which reads one result at a time).
func valueFuncs(m *pgtype.Map, fields []pgconn.FieldDescription) []valueFunc {
	funcs := make([]valueFunc, len(fields))
	for i, fd := range fields {
		funcs[i] = valueFuncFor(m, fd.DataTypeOID, fd.Format)
	}
	return funcs
}

func valueFuncFor(m *pgtype.Map, oid uint32, format int16) valueFunc {
	switch oid {
	case pgtype.BoolOID:
		return scanTo[bool](m, oid, format, func(d bool) sqldriver.Value { return d })
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return scanTo[[]byte](m, oid, format, func(d []byte) sqldriver.Value { return d })
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return scanValuer[pgtype.Uint32](m, oid, format)
	case pgtype.DateOID:
		return scanValuer[pgtype.Date](m, oid, format)
	case pgtype.Float4OID:
		return scanTo[float32](m, oid, format, func(d float32) sqldriver.Value { return float64(d) })
	case pgtype.Float8OID:
		return scanTo[float64](m, oid, format, func(d float64) sqldriver.Value { return d })
	case pgtype.Int2OID:
		return scanTo[int16](m, oid, format, func(d int16) sqldriver.Value { return int64(d) })
	case pgtype.Int4OID:
		return scanTo[int32](m, oid, format, func(d int32) sqldriver.Value { return int64(d) })
	case pgtype.Int8OID:
		return scanTo[int64](m, oid, format, func(d int64) sqldriver.Value { return d })
	case pgtype.TimestampOID:
		return scanValuer[pgtype.Timestamp](m, oid, format)
	case pgtype.TimestamptzOID:
		return scanValuer[pgtype.Timestamptz](m, oid, format)
	default:
		return scanTo[string](m, oid, format, func(d string) sqldriver.Value { return d })
	}
}

func scanTo[T any](m *pgtype.Map, oid uint32, format int16, value func(T) sqldriver.Value) valueFunc {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (sqldriver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return value(d), nil
	}
}

func scanValuer[T any, P interface {
	*T
	sqldriver.Valuer
}](m *pgtype.Map, oid uint32, format int16) valueFunc {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (sqldriver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return P(&d).Value()
	}
}

// resultReader is one statement's result: a *pgconn.ResultReader, or a
// pgx.Rows read through pgxResult (the simple protocol's, whose arguments
// pgx interpolates).
type resultReader interface {
	NextRow() bool
	Values() [][]byte
	FieldDescriptions() []pgconn.FieldDescription
	Close() (pgconn.CommandTag, error)
}

// pgxResult reads a pgx.Rows as a resultReader.
type pgxResult struct{ r pgx.Rows }

func (p pgxResult) NextRow() bool                                { return p.r.Next() }
func (p pgxResult) Values() [][]byte                             { return p.r.RawValues() }
func (p pgxResult) FieldDescriptions() []pgconn.FieldDescription { return p.r.FieldDescriptions() }
func (p pgxResult) Close() (pgconn.CommandTag, error) {
	p.r.Close()
	return p.r.CommandTag(), p.r.Err()
}

// rows is a database/sql result read straight from pgconn (or, in the
// simple protocol, from pgx). It is used for every query pgwait runs, plain
// or behind a WAIT FOR LSN.
type rows struct {
	rr      resultReader
	typeMap *pgtype.Map
	fields  []pgconn.FieldDescription
	convert []valueFunc
	names   []string

	// The first row is read before the rows are handed out, so that errors
	// (a replica refusing a write) surface at Query time: preloaded says a
	// read result (a row in rr, or its end) waits to be handed out, and
	// preloadedMore whether it is a row.
	preloaded, preloadedMore bool

	// first is the first row, converted, when readAhead read past it; it is
	// handed out (with firstErr, its conversion's error) before anything
	// preloaded. firstArr holds it for narrow rows, saving an allocation.
	first    []sqldriver.Value
	firstErr error
	firstArr [8]sqldriver.Value

	// finish runs once, when the result has been read to its end or closed,
	// with the command's outcome; it reads the rest of a pipeline.
	finish func(pgconn.CommandTag, error) error
	done   bool
	err    error
}

func newRows(rr resultReader, m *pgtype.Map, convert []valueFunc, finish func(pgconn.CommandTag, error) error) *rows {
	r := &rows{rr: rr, typeMap: m, fields: rr.FieldDescriptions(), finish: finish}
	r.convert = convert
	if r.convert == nil || len(r.convert) != len(r.fields) {
		r.convert = valueFuncs(m, r.fields)
	}
	return r
}

// preload reads the first row and returns the statement's error, if it
// failed before producing one.
func (r *rows) preload() error {
	r.preloadedMore = r.rr.NextRow()
	r.preloaded = true
	if !r.preloadedMore {
		r.end()
		return r.err
	}
	return nil
}

// readAhead reads, after preload, the message that follows the first row
// (a second row, or the end of the result), so that a one-row result is
// complete before any row is handed out. It returns the error the
// statement ended with if it ended there; the rows still hand out the first
// row and then that error, as they would without reading ahead, so the
// caller decides whether the error replaces the rows (a replica read
// cancelled by a recovery conflict runs again: replicaRows).
func (r *rows) readAhead() error {
	if !r.preloaded || !r.preloadedMore || r.first != nil {
		return nil
	}
	if len(r.fields) <= len(r.firstArr) {
		r.first = r.firstArr[:len(r.fields)]
	} else {
		r.first = make([]sqldriver.Value, len(r.fields))
	}
	r.firstErr = r.convertRow(r.first)
	r.preloadedMore = r.rr.NextRow()
	if !r.preloadedMore {
		r.end()
		return r.err
	}
	return nil
}

func (r *rows) end() {
	if r.done {
		return
	}
	r.done = true
	tag, err := r.rr.Close()
	if r.finish != nil {
		err = r.finish(tag, err)
	}
	r.err = err
}

func (r *rows) Columns() []string {
	if r.names == nil {
		r.names = make([]string, len(r.fields))
		for i, fd := range r.fields {
			r.names[i] = fd.Name
		}
	}
	return r.names
}

func (r *rows) Close() error {
	r.end()
	return r.err
}

func (r *rows) Next(dest []sqldriver.Value) error {
	if r.first != nil {
		copy(dest, r.first)
		err := r.firstErr
		r.first, r.firstErr = nil, nil
		return err
	}
	more := false
	if r.preloaded {
		more, r.preloaded = r.preloadedMore, false
	} else if !r.done {
		more = r.rr.NextRow()
	}
	if !more {
		r.end()
		if r.err != nil {
			return r.err
		}
		return io.EOF
	}
	return r.convertRow(dest)
}

// convertRow converts the row rr holds into dest.
func (r *rows) convertRow(dest []sqldriver.Value) error {
	for i, raw := range r.rr.Values() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.convert[i](raw)
		if err != nil {
			return fmt.Errorf("convert field %d failed: %w", i, err)
		}
		dest[i] = v
	}
	return nil
}

// ColumnTypeDatabaseTypeName returns the column's type name in upper case, or
// its OID when pgx does not know the type.
func (r *rows) ColumnTypeDatabaseTypeName(index int) string {
	oid := r.fields[index].DataTypeOID
	if dt, ok := r.typeMap.TypeForOID(oid); ok {
		return strings.ToUpper(dt.Name)
	}
	return strconv.FormatInt(int64(oid), 10)
}

const varHeaderSize = 4

// ColumnTypeLength returns the length of variable-length column types.
func (r *rows) ColumnTypeLength(index int) (int64, bool) {
	fd := r.fields[index]
	switch fd.DataTypeOID {
	case pgtype.TextOID, pgtype.ByteaOID:
		return math.MaxInt64, true
	case pgtype.VarcharOID, pgtype.BPCharOID:
		return int64(fd.TypeModifier - varHeaderSize), true
	case pgtype.VarbitOID:
		return int64(fd.TypeModifier), true
	}
	return 0, false
}

// ColumnTypePrecisionScale returns the precision and scale of numeric columns.
func (r *rows) ColumnTypePrecisionScale(index int) (precision, scale int64, ok bool) {
	fd := r.fields[index]
	if fd.DataTypeOID != pgtype.NumericOID {
		return 0, 0, false
	}
	mod := fd.TypeModifier - varHeaderSize
	return int64((mod >> 16) & 0xffff), int64(mod & 0xffff), true
}

// ColumnTypeScanType returns the Go type a column scans into.
func (r *rows) ColumnTypeScanType(index int) reflect.Type {
	switch r.fields[index].DataTypeOID {
	case pgtype.Float8OID, pgtype.NumericOID:
		return reflect.TypeFor[float64]()
	case pgtype.Float4OID:
		return reflect.TypeFor[float32]()
	case pgtype.Int8OID:
		return reflect.TypeFor[int64]()
	case pgtype.Int4OID:
		return reflect.TypeFor[int32]()
	case pgtype.Int2OID:
		return reflect.TypeFor[int16]()
	case pgtype.BoolOID:
		return reflect.TypeFor[bool]()
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return reflect.TypeFor[time.Time]()
	case pgtype.ByteaOID:
		return reflect.TypeFor[[]byte]()
	}
	return reflect.TypeFor[string]()
}
