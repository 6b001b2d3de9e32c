package difftest

// Deliberate lists the workload steps whose outcome through pgwait differs
// from pgx stdlib's on purpose, as "run/step", with the reason. Each reason
// is one of the root module's deliberate differences (internal/conformance,
// conformance.Deliberate), seen through an ORM; Compare checks that every
// entry still differs.
var Deliberate = map[string]string{}
