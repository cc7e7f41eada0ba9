// A GoogleTest fixture with an MLIRContext holding the tl dialects, whose
// diagnostics are collected in `diagnostics` for assertions.
#pragma once

#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <string>

class TlContextTest : public ::testing::Test {
protected:
  TlContextTest() {
    mlir::DialectRegistry registry;
    mlir::tl::registerTlDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    context.getDiagEngine().registerHandler([this](mlir::Diagnostic &d) {
      diagnostics += d.str() + "\n";
      return mlir::success();
    });
  }

  mlir::MLIRContext context;
  std::string diagnostics;
};
