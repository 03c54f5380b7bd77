#ifndef SFKD_CPNG_SHIM_H
#define SFKD_CPNG_SHIM_H
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>

/* libpng reports errors by longjmp, which Swift cannot catch: the decode runs here, in C. */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char message[256];
} cpng_reader;

static void cpng_read(png_structp png, png_bytep out, size_t length) {
    cpng_reader *reader = (cpng_reader *)png_get_io_ptr(png);
    if (reader->size - reader->offset < length) png_error(png, "the file ends early (truncated)");
    memcpy(out, reader->data + reader->offset, length);
    reader->offset += length;
}

static void cpng_error(png_structp png, png_const_charp message) {
    cpng_reader *reader = (cpng_reader *)png_get_error_ptr(png);
    snprintf(reader->message, sizeof reader->message, "%s", message);
    png_longjmp(png, 1);
}

static void cpng_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

/* Decodes a PNG held in memory to 8-bit RGB, 3 bytes per pixel, rows top to bottom: palette
   expanded (transparency ignored), grey replicated, 16-bit samples reduced to their high
   byte, alpha dropped; what PIL's convert("RGB") gives. Returns a malloc'd buffer the caller
   frees, or NULL with the reason in `message`. Images over `max_pixels` are refused before
   anything is allocated for them. */
static inline unsigned char *cpng_decode_rgb(const unsigned char *data, size_t size, size_t max_pixels,
                                             unsigned *width, unsigned *height, char *message, size_t message_size) {
    cpng_reader reader;
    memset(&reader, 0, sizeof reader);
    reader.data = data;
    reader.size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, cpng_error, cpng_warning);
    if (!png) {
        snprintf(message, message_size, "libpng could not start");
        return NULL;
    }
    png_infop info = png_create_info_struct(png);
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free((void *)pixels);
        free((void *)rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        snprintf(message, message_size, "%s", reader.message[0] ? reader.message : "libpng could not start");
        return NULL;
    }
    png_set_read_fn(png, &reader, cpng_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((size_t)w * (size_t)h > max_pixels) {
        snprintf(reader.message, sizeof reader.message, "%ux%u pixels; sfkd reads images of up to %zu pixels", w, h, max_pixels);
        png_longjmp(png, 1);
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    /* Palette expansion turns tRNS into alpha; it goes with the rest. */
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout after conversion to RGB");
    pixels = malloc((size_t)w * (size_t)h * 3);
    rows = malloc((size_t)h * sizeof(png_bytep));
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free((void *)rows);
    png_destroy_read_struct(&png, &info, NULL);
    *width = w;
    *height = h;
    return pixels;
}

static inline const char *cpng_version(void) { return PNG_LIBPNG_VER_STRING; }
#endif
