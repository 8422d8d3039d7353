package manifest

import "errors"

var (
	// ErrInvalid reports a manifest that is malformed or inconsistent.
	ErrInvalid = errors.New("manifest: invalid manifest")
	// ErrChanged reports a file that changed while it was being hashed.
	ErrChanged = errors.New("manifest: file changed while hashing")
)
