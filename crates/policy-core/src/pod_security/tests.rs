//! Behaviour tests of the podSecurity evaluation.
