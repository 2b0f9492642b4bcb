#ifndef REGISTRYD_CSQLITE_SHIM_H
#define REGISTRYD_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
