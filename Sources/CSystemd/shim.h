#ifndef REGISTRYD_CSYSTEMD_SHIM_H
#define REGISTRYD_CSYSTEMD_SHIM_H
// Socket activation and service notification (sd_listen_fds_with_names, sd_notify).
#include <systemd/sd-daemon.h>
#endif
