package pipeline

// LineOf is lineOf, for the tests of line records.
var LineOf = lineOf
