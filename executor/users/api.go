package users

// The package's API:
//
//	func Lookup(root, spec string) (Owner, error)
//	    Resolves "user", "uid", "user:group", "uid:gid", "user:gid", ... against
//	    root's /etc/passwd and /etc/group (opened inside root, symlinks contained);
//	    a numeric id needs no entry; a name missing from the files is an error that names it.
//	type Owner struct{ UID, GID int; Groups []int /* supplementary groups, for RUN's USER */ }
