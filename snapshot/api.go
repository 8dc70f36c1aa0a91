package snapshot

// The package's API (bodies in the other files):
//
//	type Store struct{ ... }  // extracted layers by diffID + overlay mounts, under one root
//	func New(root string) (*Store, error)
//	func (s *Store) Extract(ctx context.Context, diffID v1.Hash, open func() (io.ReadCloser, error)) (string, error)
//	    Unpacks an uncompressed layer tar once into <root>/layers/<hex>/ (temp dir
//	    + rename, so a crash leaves nothing half-made), OCI whiteouts turned into
//	    overlay whiteouts. Returns the directory; a second call finds it.
//	func (s *Store) Lookup(diffID v1.Hash) (string, bool)
//	func (s *Store) Mount(ctx context.Context, lowers []string) (*Mount, error)
//	    Mounts overlayfs of lowers (top-most first, like lowerdir=) with a fresh
//	    upper dir; no lowers (scratch) works.
//	func (s *Store) MountReadOnly(ctx context.Context, lowers []string) (*Mount, error)
//	type Mount struct{ Dir string /* merged root */; Upper string; ... }
//	func (m *Mount) Release() error          // unmount, remove upper/work
//	func (s *Store) Commit(m *Mount, diffID v1.Hash) (string, error)
//	    Unmounts and moves the upper dir into the layer store as diffID's
//	    directory (it already is in overlay lower format), so built layers
//	    are never extracted again.
//	func (s *Store) Sweep() error            // start-up: unmount and remove what dead processes left
//	func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) error
//	    Secure tar extraction: no entry lands outside dir (.., absolute names,
//	    symlinks, hardlinks); keeps modes, owners, times, xattrs, devices, fifos.
//	type UnpackOptions struct{ OverlayWhiteouts bool; ... }
//	func WriteDiff(ctx context.Context, w io.Writer, upper string, opts DiffOptions) (int, error)
//	    Writes the OCI layer tar of an overlay upper dir (deterministic, whiteouts
//	    converted); returns the number of entries (0: empty diff).
//	type DiffOptions struct{ SourceDateEpoch *time.Time }
