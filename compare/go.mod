module github.com/nfsflock/nfsflock/compare

go 1.26.0

replace github.com/nfsflock/nfsflock => ../

require (
	github.com/gofrs/flock v0.13.2
	github.com/nfsflock/nfsflock v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.50.0
)

require github.com/cenkalti/backoff/v4 v4.3.0 // indirect
