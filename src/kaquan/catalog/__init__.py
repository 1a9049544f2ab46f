"""Products and SKUs: what is sold, at what price, and what its codes must look like."""
