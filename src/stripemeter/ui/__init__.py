"""Server-rendered admin console and the customer usage widget."""
