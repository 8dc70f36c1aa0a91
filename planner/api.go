package planner

// The package's API (bodies in planner.go and friends):
//
//	func BaseRefs(df *parser.Dockerfile, opts Options) ([]BaseRef, error)
//	    The image references (FROM <image>, COPY --from=<image>) that the
//	    stages needed for opts.Target use, after global ARG expansion, so that
//	    cmd/ can resolve them into opts.Bases. "scratch" and stage names are
//	    not images.
//	func New(df *parser.Dockerfile, opts Options) (*Plan, error)
//	    Plans the build. Pure: no I/O, no globals. Errors are *parser.Error
//	    values naming the Dockerfile line (unknown stage, cycle, unknown
//	    --target, a base image missing from opts.Bases, bad expansion).
