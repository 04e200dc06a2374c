package registry

// MirrorIndex is the Consul index of the follower's last list read (0 without one).
func (r *Registry) MirrorIndex() uint64 {
	if r.mirror == nil {
		return 0
	}
	return r.mirror.lastIndex()
}
