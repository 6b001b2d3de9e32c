package difftest

// Deliberate lists the workload steps whose outcome through pgwait differs
// from pgx stdlib's on purpose, as "run/step", with the reason. Each reason
// is one of the root module's deliberate differences (internal/conformance,
// conformance.Deliberate), seen through an ORM; Compare checks that every
// entry still differs.
var Deliberate = map[string]string{
	// GORM selects "*": after AutoMigrate changed the table, the same query
	// text returns other columns.
	"gorm/v2: First product":      staleCachedPlan,
	"gorm/v2: products by map":    staleCachedPlan,
	"gorm/v2: products into maps": staleCachedPlan,
	"gorm/v2: FirstOrCreate map":  staleCachedPlan,

	// ent's selects name their columns, but migration 2 made users.age a
	// bigint: the result type changed.
	"ent/at 2: users":                          staleCachedPlan,
	"ent/at 2: users older than 29":            staleCachedPlan,
	"ent/at 2: users with pets (HasNeighbors)": staleCachedPlan,

	// bun selects the model's columns, and migration 2 made essays.words a
	// bigint. (The m2m and belongs-to queries that read essays fail with
	// it on pgx stdlib.)
	"bun/after migration 2: has-many and m2m": staleCachedPlan,
	"bun/after migration 2: belongs-to join":  staleCachedPlan,
	"bun/after migration 2: ScanAndCount":     staleCachedPlan,
	"bun/after migration 2: scan into map":    staleCachedPlan,
}

// staleCachedPlan is the reason of the differences after a schema change.
const staleCachedPlan = "pgx stdlib reports 0A000 (cached plan must not change result type) once per connection and cached statement after a schema change; pgwait prepares the statement again and runs it, since nothing was executed (conformance.Deliberate: \"cached query after DDL\")."
