"""camvirt, the command line client of camvirtd: cli (parser and main), configfind (which config),
runner (commands with progress, status), configview, fleet (status --all), statusview, watch, reach
(why camvirtd cannot be reached), terminal (how it writes), devicequery (devices for configview)."""
