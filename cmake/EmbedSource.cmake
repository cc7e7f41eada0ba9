# Writes OUTPUT: the text of INPUT as one C++ raw string literal, so kernel
# libraries stay real source files (compiled and read on their own) that tlc
# carries inside its binary.
#   cmake -DINPUT=file.h -DOUTPUT=file.h.inc -P EmbedSource.cmake
file(READ "${INPUT}" text)
string(FIND "${text}" ")tl_source\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string's delimiter )tl_source\"")
endif()
file(WRITE "${OUTPUT}.tmp" "R\"tl_source(${text})tl_source\"\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
