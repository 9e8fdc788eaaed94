//! The evidence document (the reference wrapper's JSON plus what it lacks) and the
//! evidence pack written atomically to the run's output directory.
