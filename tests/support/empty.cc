// SPDX-License-Identifier: Apache-2.0
// Keeps the test-support library non-empty.
