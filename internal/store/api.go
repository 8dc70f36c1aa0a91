package store

// The package's API (bodies in the other files):
//
//	func Open(root string) (*Store, error)
//	    root/oci is an OCI image layout (index.json, oci-layout, blobs/sha256);
//	    root/tmp holds temp files; creates what is missing.
//	func (s *Store) Root() string
//	func (s *Store) WriteLayer(ctx context.Context, write func(io.Writer) error) (v1.Layer, error)
//	    Streams the uncompressed tar that write produces through sha256 (diffID)
//	    and pgzip (then sha256 for the digest) into a temp file in the blob
//	    store, fsyncs and renames it into place. The layer knows its digests
//	    without re-reading; media type OCI gzip layer.
//	func (s *Store) Put(ctx context.Context, img v1.Image, names []string) (v1.Hash, error)
//	    Writes the image's blobs (skipping present ones) atomically, then
//	    updates index.json under a file lock: each name (normalised
//	    "repo:tag") moves to this image; returns the manifest digest.
//	func (s *Store) Image(ref string) (v1.Image, v1.Hash, error)
//	    By name ("busybox" means "busybox:latest"), full digest or an
//	    unambiguous hex prefix (>= 4) of the manifest digest. ErrNotFound.
//	func (s *Store) List() ([]Entry, error)
//	func (s *Store) Tag(src, dst string) error
//	func (s *Store) Remove(ref string) error  // untags; removes the manifest entry when untagged
//	func (s *Store) Save(ctx context.Context, refs []string, format Format, w io.Writer) error
//	func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error)     // docker-archive or oci-archive
//	func (s *Store) LoadLayout(ctx context.Context, dir string) ([]string, error)
//	func WriteLayout(ctx context.Context, dir string, img v1.Image, names []string) error
//	func WriteArchive(ctx context.Context, w io.Writer, img v1.Image, names []string, format Format) error
//	var ErrNotFound
