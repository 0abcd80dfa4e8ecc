"""The whole fleet on one machine: loopback DNS, process supervision, the demo driver."""
