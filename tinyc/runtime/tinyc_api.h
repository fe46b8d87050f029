/* tinyc model API: tensor descriptors shared by generated models and firmware harnesses. */
#ifndef TINYC_API_H
#define TINYC_API_H

#include <stdint.h>

enum {
  TINYC_INT8 = 1,
  TINYC_INT16 = 2,
  TINYC_INT32 = 3,
  TINYC_FLOAT32 = 4,
  TINYC_UINT8 = 5
};

typedef struct {
  const char *name;
  void *data;       /* where the value lives (inside the arena); write inputs here */
  uint32_t bytes;   /* size in bytes */
  uint8_t dtype;    /* TINYC_INT8, ... */
  uint8_t rank;
  int32_t shape[6]; /* in the model file's own layout */
  float scale;      /* 0 when not quantized */
  int32_t zero_point;
} tinyc_tensor_t;

#endif
