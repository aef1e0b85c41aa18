//! StreamLake's operator: the four custom resources and their controllers.

pub mod crd;
