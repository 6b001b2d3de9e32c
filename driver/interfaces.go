package driver

import sqldriver "database/sql/driver"

// The database/sql interfaces pgwait implements, checked at compile time.
var (
	_ sqldriver.Driver        = Driver{}
	_ sqldriver.DriverContext = Driver{}

	_ sqldriver.Connector = (*Connector)(nil)

	_ sqldriver.Conn               = (*Conn)(nil)
	_ sqldriver.ConnBeginTx        = (*Conn)(nil)
	_ sqldriver.ConnPrepareContext = (*Conn)(nil)
	_ sqldriver.ExecerContext      = (*Conn)(nil)
	_ sqldriver.QueryerContext     = (*Conn)(nil)
	_ sqldriver.Pinger             = (*Conn)(nil)
	_ sqldriver.NamedValueChecker  = (*Conn)(nil)
	_ sqldriver.SessionResetter    = (*Conn)(nil)
	_ sqldriver.Validator          = (*Conn)(nil)

	_ sqldriver.Tx = (*Tx)(nil)

	_ sqldriver.Stmt             = (*Stmt)(nil)
	_ sqldriver.StmtExecContext  = (*Stmt)(nil)
	_ sqldriver.StmtQueryContext = (*Stmt)(nil)

	_ sqldriver.Rows                           = (*rows)(nil)
	_ sqldriver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ sqldriver.RowsColumnTypeLength           = (*rows)(nil)
	_ sqldriver.RowsColumnTypePrecisionScale   = (*rows)(nil)
	_ sqldriver.RowsColumnTypeScanType         = (*rows)(nil)
)

// Not implemented, on purpose:
//   - driver.Execer, driver.Queryer: superseded by the Context forms.
//   - driver.RowsNextResultSet: pgwait runs one statement per call.
//   - driver.Result.LastInsertId: PostgreSQL has none; use RETURNING.
