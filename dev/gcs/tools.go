//go:build tools

// Package tools pins the GCS emulator that dev/gcs/build builds; it is never compiled itself.
package tools

import _ "github.com/fsouza/fake-gcs-server"
