package copier

// The package's API (bodies in the other files): Docker's COPY/ADD file
// semantics between two directories on the host, with every path resolved
// inside its root.
//
//	type Options struct {
//	    SrcRoot  string   // the build context dir, or a mounted stage/image root
//	    Sources  []string // as written (expanded): files, dirs, wildcards, relative to SrcRoot ("/" allowed)
//	    Heredocs []Inline // inline sources: name + content, written as files
//	    DestRoot string   // the step's mounted root filesystem
//	    Dest     string   // absolute path in the image; trailing "/" means directory
//	    Owner    *Owner   // resolved --chown (uid, gid); nil keeps 0:0 for context sources, source owners for stage sources? (Docker: 0:0 always unless --chown)
//	    Chmod    string   // --chmod, octal or symbolic; "" keeps modes
//	    Add      bool     // ADD: unpack local tar/gzip/bzip2/xz archives into Dest
//	    Unpack   *bool    // ADD --unpack override
//	    Excludes []string // --exclude patterns
//	    Parents  bool     // --parents
//	    Ignore   *patternmatcher.PatternMatcher // .dockerignore of the context (nil: none)
//	    DirTime  time.Time // mtime for directories the copy has to create
//	}
//	func Copy(ctx context.Context, o Options) error
//	    Errors name the missing source (`COPY failed: file not found in build context: "x"`-like, without host paths).
//	func LoadIgnore(contextDir, dockerfile string) (*patternmatcher.PatternMatcher, error)
//	    <Dockerfile>.dockerignore next to the Dockerfile wins over <context>/.dockerignore.
