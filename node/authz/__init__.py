"""Authorization: who may do what, for every dialect and every write (`policy`)."""
