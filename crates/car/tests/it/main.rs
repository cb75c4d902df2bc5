//! Integration tests for atrepo-car.
