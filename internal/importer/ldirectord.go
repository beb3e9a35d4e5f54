package importer

import "errors"

// Ldirectord imports an ldirectord.cf.
func Ldirectord(path string) (*Result, error) { return nil, errors.New("todo") }
