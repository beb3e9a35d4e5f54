package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// secretFileMax bounds what is read of a file that should hold one key or
// token: a larger one is not a credential.
const secretFileMax = 4096

// readSecretFile reads a file that holds a credential (a VRRP key, the
// status page's token), naming it as what ("key file") in its errors. It
// opens without blocking, so a FIFO named by mistake cannot hang a load or
// a reload; it refuses anything but a regular file, a file over
// secretFileMax bytes, and, before reading a byte, a mode that modeErr
// refuses (each caller words its own advice).
func readSecretFile(what, path string, modeErr func(fs.FileMode) error) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, secretFileErr(what, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, secretFileErr(what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if err := modeErr(fi.Mode().Perm()); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, secretFileMax+1))
	if err != nil {
		return nil, secretFileErr(what, path, err)
	}
	if len(data) > secretFileMax {
		return nil, fmt.Errorf("%s %s is larger than %d bytes: not one credential", what, path, secretFileMax)
	}
	return data, nil
}

// secretFileErr says why a secret file cannot be read, naming it once.
func secretFileErr(what, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}
