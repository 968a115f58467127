"""camvirt-site: a whole observatory site in network namespaces."""
