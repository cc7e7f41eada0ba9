//===- TlDialect.h - the tl dialect ------------------------------*- C++ -*-===//
#ifndef TL_DIALECT_H
#define TL_DIALECT_H

#include "mlir/IR/Dialect.h"

#include "dialects/tl/IR/TlDialect.h.inc"

#endif // TL_DIALECT_H
