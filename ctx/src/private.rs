//! What macro expansions call. Not API: may change in any release.
