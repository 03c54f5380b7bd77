#ifndef SFKD_CTURBOJPEG_SHIM_H
#define SFKD_CTURBOJPEG_SHIM_H
#include <stddef.h>
#include <turbojpeg.h>
#endif
