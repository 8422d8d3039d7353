package manifest

import "errors"

// ErrInvalid reports a manifest that is malformed or inconsistent.
var ErrInvalid = errors.New("manifest: invalid manifest")
