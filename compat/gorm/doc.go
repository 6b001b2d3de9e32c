// Package gormcompat proves that GORM (gorm.io/gorm with gorm.io/driver/postgres)
// runs on pgwait unchanged: its tests, against a real primary and replica,
// show read-your-writes through GORM's API with the reads served by the
// replica. It has no code of its own.
package gormcompat
