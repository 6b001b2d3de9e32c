package pgtest

// PrimaryDataDir returns the current primary's data directory, for tools
// that read it, such as pg_waldump. Do not write to it.
func (c *Cluster) PrimaryDataDir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary.data
}
