"""Reading a problem package (pure: no box, no Redis), shared by the API's upload and the judge."""
