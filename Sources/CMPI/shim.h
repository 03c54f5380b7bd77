#ifndef SFKD_CMPI_SHIM_H
#define SFKD_CMPI_SHIM_H
#include <mpi.h>

/* Open MPI's predefined handles are casts of the addresses of incomplete structs, which
   Swift cannot import. These getters hand them over as ordinary values. */
static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm cmpi_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype cmpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype cmpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op cmpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op cmpi_op_min(void) { return MPI_MIN; }
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int cmpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int cmpi_any_tag(void) { return MPI_ANY_TAG; }
static inline int cmpi_undefined(void) { return MPI_UNDEFINED; }
static inline int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int cmpi_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }

#endif
