"""One module per archive, each implementing the DataSource protocol of core."""
