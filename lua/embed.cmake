# Write the built-in profiles as C: cmake -DPOLICY_DIR=... -DOUTPUT=... -P
# Every POLICY_DIR/*.lua except *_test.lua becomes one entry of
# nu__builtin_profiles (name = file name without ".lua").
file(GLOB inputs ${POLICY_DIR}/*.lua)
list(FILTER inputs EXCLUDE REGEX "_test\\.lua$")
list(SORT inputs)

set(body "/* Generated from policies/ by lua/embed.cmake; do not edit. */\n")
string(APPEND body "#include \"policy_internal.h\"\n\n")
set(table "")
set(index 0)
foreach(input ${inputs})
  get_filename_component(name ${input} NAME_WE)
  file(READ ${input} hex HEX)
  file(SIZE ${input} size)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
  string(APPEND body "static const char nu__builtin_${index}[] = {\n${bytes}0x00};\n")
  string(APPEND table "    { \"${name}\", nu__builtin_${index}, ${size} },\n")
  math(EXPR index "${index} + 1")
endforeach()
string(APPEND body "\nconst nu__builtin_t nu__builtin_profiles[] = {\n${table}    { NULL, NULL, 0 }\n};\n")

# Rewrite only when the content changes, so builds stay incremental.
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
  if(old STREQUAL body)
    return()
  endif()
endif()
file(WRITE ${OUTPUT} "${body}")
